//go:build linux

package main

import "syscall"

// procAttr puts redis-server in its own process group (a Ctrl-C to the
// program does not reach it; the program kills it itself) and has the
// kernel kill it if the program dies without doing so.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
