package framework

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is a program the suite runs in the background (the manager, the sample
// plugin), its output appended to LogPath. It can be started again after it stopped,
// with the same arguments. Started processes die with the test process (see
// sysProcAttr), so a crashed test leaves none behind.
type Process struct {
	Name    string
	Path    string
	Args    []string
	Env     []string // added to the test process's environment
	LogPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts the process; it is an error when it runs already.
func (p *Process) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		select {
		case <-p.done:
		default:
			return fmt.Errorf("%s runs already (pid %d)", p.Name, p.cmd.Process.Pid)
		}
	}
	logf, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "==== %s: starting %s %s\n", time.Now().Format(time.RFC3339Nano), p.Path, strings.Join(p.Args, " "))
	cmd := exec.Command(p.Path, p.Args...)
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(logf, "==== %s: %s exited: %v\n", time.Now().Format(time.RFC3339Nano), p.Name, err)
		logf.Close()
		close(done)
	}()
	p.cmd, p.done = cmd, done
	return nil
}

// Pid is the process id of the running process, 0 when none runs.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.exited() {
		return 0
	}
	return p.cmd.Process.Pid
}

// Running reports whether the process runs.
func (p *Process) Running() bool { return p.Pid() != 0 }

func (p *Process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Kill sends SIGKILL and waits until the process is gone.
func (p *Process) Kill() error { return p.Stop(0) }

// Stop sends SIGTERM, and SIGKILL when the process has not exited after grace (at
// once when grace is 0); it returns once the process is gone. Stopping a process
// that does not run is not an error.
func (p *Process) Stop(grace time.Duration) error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	default:
	}
	if grace > 0 {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
			return nil
		case <-time.After(grace):
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("killing %s: %w", p.Name, err)
	}
	select {
	case <-done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", p.Name, cmd.Process.Pid)
	}
}

// Exited is closed when the current run of the process ends.
func (p *Process) Exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// FreePort is a TCP port on 127.0.0.1 that nothing listened on a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// LoopbackAddr is 127.0.0.1:port.
func LoopbackAddr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// WaitTCP waits until addr accepts connections, or until p exits or ctx ends.
func WaitTCP(ctx context.Context, p *Process, addr string) error {
	return waitUntil(ctx, p, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}, "listening on "+addr)
}

// WaitHTTP waits until url answers 200, or until p exits or ctx ends.
func WaitHTTP(ctx context.Context, p *Process, url string) error {
	client := &http.Client{Timeout: 2 * time.Second}
	return waitUntil(ctx, p, func() bool {
		resp, err := client.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "answering 200 on "+url)
}

func waitUntil(ctx context.Context, p *Process, ok func() bool, what string) error {
	exited := p.Exited()
	for {
		if ok() {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("%s exited before %s (log: %s)", p.Name, what, p.LogPath)
		case <-ctx.Done():
			return fmt.Errorf("%s is not %s: %w (log: %s)", p.Name, what, ctx.Err(), p.LogPath)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
