//go:build !linux

package framework

import "syscall"

// sysProcAttr: only Linux can tie a started process's life to the test process's
// (and the local control plane runs on Linux only); elsewhere the teardown stops it.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }

func dieWithParent() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
