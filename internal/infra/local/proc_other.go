//go:build !linux

package local

import (
	"errors"
	"time"
)

var errLinuxOnly = errors.New("provider local runs on Linux only")

func spawn(string, []string, string, ...string) (int, error) { return 0, errLinuxOnly }
func alive(int, string) bool                                 { return false }
func kill(int, string, time.Duration) error                  { return errLinuxOnly }
func lock(string) (func(), error)                            { return nil, errLinuxOnly }
