//go:build !unix

package hfhub

import "context"

// lockBlob is a no-op where flock is not available: concurrent downloads
// of one blob by two processes may then collide.
func lockBlob(context.Context, string, string, string) (func(), error) {
	return func() {}, nil
}
