package framework

import "syscall"

// sysProcAttr makes a started process die with the test process (Pdeathsig), however
// that ends, and keeps it out of the terminal's process group, so that a Ctrl-C
// reaches the test process alone and its teardown stops everything in order.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}

// dieWithParent makes a short-lived command (kubectl) die with the test process.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
