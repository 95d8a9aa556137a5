package config

// EdgesDomain is the domain under the zone that holds every region's edges
// name, "edges.<zone>". It is reserved: no hostname of the CDN may lie
// under it.
func EdgesDomain(zone string) string { return "edges." + zone }

// EdgesName is the DNS name that answers one region's edges,
// "<region>.edges.<zone>": a child region's edges reach their parent by
// it, the dns answers it and deploy publishes it. It is fully qualified
// when zone is, and keeps the case it is given.
func EdgesName(region, zone string) string { return region + "." + EdgesDomain(zone) }
