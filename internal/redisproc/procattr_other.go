//go:build unix && !linux

package redisproc

import "syscall"

// procAttr puts redis-server in its own process group (a Ctrl-C to the
// program does not reach it); the owner kills it itself.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
