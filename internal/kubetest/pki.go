package kubetest

import (
	"time"

	"github.com/kubecdn/kubecdn/internal/controlplane"
)

// newPKI writes the PKI of one test API server into dir: valid for a day,
// one admin token (AdminUser in group system:masters, which passes every
// authorizer).
func newPKI(dir string) (*controlplane.PKI, error) {
	return controlplane.NewPKI(dir, time.Now(), 24*time.Hour,
		[]controlplane.User{{Name: AdminUser, Groups: []string{"system:masters"}}})
}
