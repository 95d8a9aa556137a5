package render

// EdgeSelector is the label selector of a CDN's edge pods, for the
// operator tools that find them through a region's API server
// (selectors_test.go holds it to the rendered StatefulSet's).
func EdgeSelector(cdn string) map[string]string {
	return map[string]string{"app.kubernetes.io/name": edgeName, labelCDN: cdn}
}

// EdgeContainer is the name of the edge's container in its pods.
const EdgeContainer = "edge"
