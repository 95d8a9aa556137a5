package config

import "math"

// earthRadiusKm is the mean radius of the Earth (IUGG), the sphere every
// distance between locations is measured on.
const earthRadiusKm = 6371.0

// DistanceKm is the great-circle distance between two locations in
// kilometres (the haversine formula on a sphere, within 0.5% of the
// ellipsoid). Geo routing in the dns, the nearest Route 53 latency region
// and the local demo's client networks all measure with it, so they agree
// on which region is nearest.
func DistanceKm(a, b Location) float64 {
	const rad = math.Pi / 180
	dLat, dLon := (b.Lat-a.Lat)*rad, (b.Lon-a.Lon)*rad
	h := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(a.Lat*rad)*math.Cos(b.Lat*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	// rounding can lift h just above 1 for antipodes; Asin of more than 1 is NaN
	return 2 * earthRadiusKm * math.Asin(math.Min(1, math.Sqrt(h)))
}
