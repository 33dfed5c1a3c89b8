//go:build unix && !linux

package main

import "syscall"

// procAttr puts redis-server in its own process group; the program kills
// it itself when it ends.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
