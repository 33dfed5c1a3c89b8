//go:build linux

package redisproc

import "syscall"

// procAttr puts redis-server in its own process group (a Ctrl-C to the
// program does not reach it; the owner kills it itself) and has the kernel
// kill it if the program dies without doing so. The kernel sends that
// signal when the thread that started the process exits; Go threads exit
// only when a goroutine locked to one ends, which this package never does.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
