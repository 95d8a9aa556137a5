//go:build !linux

package controlplane

// LockFile: outside Linux, nothing is serialized.
func LockFile(string) (func(), error) { return func() {}, nil }
