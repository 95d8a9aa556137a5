package route53

import (
	"fmt"
	"math"
	"slices"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/publish"
)

// awsRegions are the regions a latency record set can name; their
// coordinates come from config.BuiltinLocation.
var awsRegions = []string{
	"us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "ca-west-1", "sa-east-1", "mx-central-1",
	"eu-west-1", "eu-west-2", "eu-west-3", "eu-central-1", "eu-central-2", "eu-north-1", "eu-south-1", "eu-south-2",
	"ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3",
	"ap-southeast-4", "ap-southeast-5", "ap-southeast-7", "ap-south-1", "ap-south-2", "ap-east-1",
	"me-south-1", "me-central-1", "il-central-1", "af-south-1",
}

// location is the target's own location, else the built-in one of its
// region name.
func location(t publish.Target) (config.Location, bool) {
	if t.Location != nil {
		return *t.Location, true
	}
	return config.BuiltinLocation(t.Region)
}

// latencyRegion is the AWS region a latency record set of t names: the
// region itself on AWS, else the AWS region nearest to its location.
func latencyRegion(t publish.Target) (string, error) {
	if t.Provider == "aws" && slices.Contains(awsRegions, t.Region) {
		return t.Region, nil
	}
	loc, ok := location(t)
	if !ok {
		if t.Provider == "aws" {
			return t.Region, nil // a region newer than the table
		}
		return "", fmt.Errorf("region %s: latency routing in Route 53 needs an AWS region, and the region has no location to find the nearest one", t.Region)
	}
	best, bestD := "", math.Inf(1)
	for _, r := range awsRegions {
		l, _ := config.BuiltinLocation(r)
		if d := config.DistanceKm(loc, l); d < bestD {
			best, bestD = r, d
		}
	}
	return best, nil
}

// continents are Route 53's continent codes, in the order extra sets are
// made, with a point near the middle of where their people live. AN
// (Antarctica) is left to the default set.
var continents = []struct {
	code string
	at   config.Location
}{
	{"AF", config.Location{Lat: 2, Lon: 21}},
	{"AS", config.Location{Lat: 30, Lon: 100}},
	{"EU", config.Location{Lat: 50, Lon: 10}},
	{"NA", config.Location{Lat: 40, Lon: -95}},
	{"OC", config.Location{Lat: -28, Lon: 140}},
	{"SA", config.Location{Lat: -15, Lon: -58}},
}

// continent is the continent a point is on, by coarse boxes that are right
// for the places data centres are (not for every border village).
func continent(l config.Location) string {
	lat, lon := l.Lat, l.Lon
	switch {
	case lat < -60:
		return "AN"
	case lon < -25 && lon > -170:
		if lat > 12 || lat > 7 && lon < -77 {
			return "NA"
		}
		return "SA"
	case lat < -10 && lon > 110 || lon > 150 || lon <= -170:
		return "OC"
	case lat >= 36 && lon >= -25 && lon < 60:
		return "EU"
	case lon >= -25 && lon < 52 && lat < 36 && !(lon > 34 && lat > 12):
		return "AF"
	}
	return "AS"
}
