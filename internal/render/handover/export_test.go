package handover

// Diff is diff from the document's root, for the randomized test.
func Diff(a, b any) []patchOp { return diff(nil, a, b) }
