// Package listen holds helpers about listen addresses.
package listen

import (
	"net"
	"net/netip"
)

// Loopback reports whether a listen address (host:port) binds loopback
// only: localhost, 127.0.0.0/8 or ::1. An empty host (":8080") binds every
// interface and is not loopback.
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
