//go:build !unix

package store

import (
	"fmt"
	"os"
	"path/filepath"
)

// lockDir only opens the lock file where flock is not available.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("store: disk cache dir %q: %w", dir, err)
	}
	return f, nil
}
