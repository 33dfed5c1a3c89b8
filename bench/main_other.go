//go:build !unix

// Command bench compares steadfast's cache with no cache and with the
// thinnest Redis cache; it needs a Unix system to start, stop and freeze
// redis-server.
package main

import "fmt"

func main() {
	fmt.Println("bench-compare: skipped: it needs a Unix system (it freezes redis-server with SIGSTOP)")
}
