package framework

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Guard makes a suite that owns a named local cluster safe to run: it serializes the
// runs of one checkout that use the same cluster name (a file lock), and it keeps a
// reaper process that removes the cluster when the test process dies without its
// teardown (a panic in a test, the go test timeout, SIGKILL). The manager and plugin
// processes die with the test process by themselves (see Process).
type Guard struct {
	lock   *os.File
	reaper *exec.Cmd
	done   chan struct{}
}

// reaperScript waits for the test process ($1) to exit, then removes the cluster ($3)
// with hack/cluster.sh of the checkout $2. SIGTERM (the normal teardown) ends it
// without doing anything. It holds a copy of the lock (fd 3) until it is done, so the
// next run waits for the removal.
const reaperScript = `trap '' INT HUP
trap 'exit 0' TERM
while kill -0 "$1" 2>/dev/null; do sleep 1 & wait $!; done
echo "reaper: test process $1 ended without its teardown: removing cluster $3"
CLUSTER_NAME="$3" exec "$2/hack/cluster.sh" down`

// Acquire takes the lock of cluster name in the checkout root, waiting up to wait for
// another run to finish (log says so), and starts the reaper, its output going to
// reaperLog.
func Acquire(ctx context.Context, root, name string, wait time.Duration, log io.Writer, reaperLog *os.File) (*Guard, error) {
	sum := sha256.Sum256([]byte(root))
	path := filepath.Join(os.TempDir(), fmt.Sprintf("cost-analysis-operator-%s-%s.lock", name, hex.EncodeToString(sum[:])[:12]))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(wait)
	told := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if err != syscall.EWOULDBLOCK || time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("another run holds %s (cluster %s of this checkout): %w", path, name, err)
		}
		if !told {
			fmt.Fprintf(log, "waiting for another run that uses cluster %s (lock %s)\n", name, path)
			told = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}

	cmd := exec.Command("bash", "-c", reaperScript, "reaper", strconv.Itoa(os.Getpid()), root, name)
	cmd.ExtraFiles = []*os.File{f}
	cmd.Stdout, cmd.Stderr = reaperLog, reaperLog         // a pipe would break (SIGPIPE) once we are gone
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // no Pdeathsig: it must outlive us
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting the reaper: %w", err)
	}
	g := &Guard{lock: f, reaper: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(g.done) }()
	return g, nil
}

// Release stops the reaper (after a normal teardown) and drops the lock.
func (g *Guard) Release() {
	_ = g.reaper.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.done:
	case <-time.After(5 * time.Second):
		_ = g.reaper.Process.Kill()
		<-g.done
	}
	g.lock.Close()
}

// Teardown runs cleanup functions once, last added first: when Run is called, or when
// the test process receives SIGINT, SIGTERM or SIGHUP (it then exits). A second
// signal during the teardown exits at once.
type Teardown struct {
	mu   sync.Mutex
	fns  []func()
	once sync.Once
	log  io.Writer
}

// NewTeardown returns a Teardown that handles the signals; log receives its messages.
func NewTeardown(log io.Writer) *Teardown {
	t := &Teardown{log: log}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		sig := <-sigs
		fmt.Fprintf(log, "received %v: tearing down (again to exit at once)\n", sig)
		go func() {
			<-sigs
			os.Exit(130)
		}()
		t.Run()
		os.Exit(130)
	}()
	return t
}

// Add registers fn.
func (t *Teardown) Add(fn func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.fns = append(t.fns, fn)
}

// Run runs the registered functions, last first, once.
func (t *Teardown) Run() {
	t.once.Do(func() {
		t.mu.Lock()
		fns := t.fns
		t.mu.Unlock()
		for i := len(fns) - 1; i >= 0; i-- {
			fns[i]()
		}
	})
}
