package config

import (
	"math"
	"testing"
)

func TestDistanceKm(t *testing.T) {
	var (
		london  = Location{Lat: 51.5074, Lon: -0.1278}
		paris   = Location{Lat: 48.8566, Lon: 2.3522}
		newYork = Location{Lat: 40.7128, Lon: -74.0060}
		la      = Location{Lat: 34.0522, Lon: -118.2437}
		sydney  = Location{Lat: -33.8688, Lon: 151.2093}
		tokyo   = Location{Lat: 35.6762, Lon: 139.6503}
	)
	tests := []struct {
		name string
		a, b Location
		want float64 // published great-circle distance, km
	}{
		{"london paris", london, paris, 344},
		{"new york london", newYork, london, 5570},
		{"new york los angeles", newYork, la, 3944},
		{"sydney tokyo", sydney, tokyo, 7823},
		{"across the antimeridian", Location{Lat: 0, Lon: 179}, Location{Lat: 0, Lon: -179}, 222.4},
		{"pole to pole", Location{Lat: 90}, Location{Lat: -90}, math.Pi * 6371},
		// the haversine term rounds to just above 1 here
		{"antipodes", Location{Lat: -88.5, Lon: -180}, Location{Lat: 88.5, Lon: 0}, math.Pi * 6371},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, d := range []float64{DistanceKm(tt.a, tt.b), DistanceKm(tt.b, tt.a)} {
				if !(math.Abs(d-tt.want) <= tt.want*0.005) { // NaN fails too
					t.Errorf("DistanceKm = %.1f km, want %.1f within 0.5%%", d, tt.want)
				}
			}
		})
	}
	if d := DistanceKm(paris, paris); d != 0 {
		t.Errorf("DistanceKm(paris, paris) = %v, want 0", d)
	}
}
