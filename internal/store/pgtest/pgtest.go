// Package pgtest gives tests a real, throwaway PostgreSQL server.
//
// One server is started per test binary, on first use, from Debian's binaries
// (/usr/lib/postgresql/*/bin; the postgresql package is installed with apt-get
// when they are missing and the test runs as root). It listens on 127.0.0.1 on a
// free port, keeps its unix socket and its data in a temporary directory, runs
// with fsync off, and every test gets a database of its own. When the tests run
// as root the server runs as the postgres user (PostgreSQL refuses root).
//
// A package that uses it must run its tests through Main, which stops the server
// and removes its directory when the tests end, failed or not:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
// The server is also killed by the kernel if the test binary dies (a parent-death
// signal), and directories left by a killed binary are removed by the next run.
// The directory is in /dev/shm when it can be (else in the temporary directory).
//
// PGTEST_POSTGRES_BIN names another directory of PostgreSQL binaries to use.
//
// When no PostgreSQL can be had, Start skips the test with the reason, except
// under CI=true, where it fails it: CI never skips the store's tests.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

const dirPrefix = "pgtest-"

var (
	mainActive atomic.Bool

	once   sync.Once
	srv    *server
	srvErr error

	dbSeq atomic.Int64
)

// Main runs the tests of a package and stops the server afterwards. Use it from
// TestMain: os.Exit(pgtest.Main(m)).
func Main(m *testing.M) int {
	mainActive.Store(true)
	code := m.Run()
	if srv != nil {
		srv.stop()
	}
	return code
}

// Start returns the DSN of a fresh, empty database on the package's server,
// starting the server on first use. The databases go with the server when the
// tests end (dropping each one after its test would force a checkpoint each).
func Start(t testing.TB) string {
	t.Helper()
	if !mainActive.Load() {
		t.Fatal("pgtest: the package's TestMain must call pgtest.Main(m), so the server is stopped at the end")
	}
	once.Do(func() { srv, srvErr = startServer() })
	if srvErr != nil {
		unavailable(t, srvErr)
	}
	name := fmt.Sprintf("t%d_%d", os.Getpid(), dbSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	return srv.dsn(name)
}

// Restart crashes the package's server (an immediate shutdown: no checkpoint,
// every session cut, crash recovery at the next start) and starts it again on
// the same port and data. Open connections break; DSNs stay valid.
func Restart(t testing.TB) {
	t.Helper()
	if srv == nil {
		t.Fatal("pgtest: Restart before Start")
	}
	srv.mu.Lock()
	if srv.conn != nil {
		_ = srv.conn.Close(context.Background())
		srv.conn = nil
	}
	srv.mu.Unlock()
	_ = srv.cmd.Process.Signal(syscall.SIGQUIT) // PostgreSQL's immediate shutdown
	select {
	case <-srv.exited:
	case <-time.After(20 * time.Second):
		_ = srv.cmd.Process.Kill()
		<-srv.exited
	}
	var err error
	for range 20 { // the port may take a moment to be free again
		var ns *server
		if ns, err = launch(srv.bin, srv.dir, srv.data, srv.cred, srv.port); err == nil {
			srv.cmd, srv.exited = ns.cmd, ns.exited
			ns.mu.Lock()
			if ns.conn != nil {
				_ = ns.conn.Close(context.Background())
			}
			ns.mu.Unlock()
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("pgtest: restart: %v", err)
}

func unavailable(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("pgtest: no PostgreSQL for this test (CI=true, so this fails rather than skips): %v", err)
	}
	t.Skipf("pgtest: no PostgreSQL for this test: %v", err)
}

type server struct {
	dir    string
	data   string
	bin    string
	cred   *syscall.Credential
	port   int
	cmd    *exec.Cmd
	exited chan struct{}
	mu     sync.Mutex
	conn   *pgx.Conn
}

func (s *server) dsn(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

func (s *server) exec(ctx context.Context, sql string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil || s.conn.IsClosed() {
		c, err := pgx.Connect(ctx, s.dsn("postgres"))
		if err != nil {
			return err
		}
		s.conn = c
	}
	_, err := s.conn.Exec(ctx, sql)
	return err
}

func (s *server) stop() {
	s.mu.Lock()
	if s.conn != nil {
		_ = s.conn.Close(context.Background())
	}
	s.mu.Unlock()
	if s.cmd != nil && s.cmd.Process != nil {
		// SIGINT is PostgreSQL's fast shutdown.
		_ = s.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-s.exited:
		case <-time.After(20 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
	}
	_ = os.RemoveAll(s.dir)
}

func startServer() (*server, error) {
	bin, err := findBinaries()
	if err != nil {
		return nil, err
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root and there is no postgres user to run the server as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	removeStaleDirs()
	dir, err := makeDir()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres",
		"--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %w: %s", err, out)
	}
	var lastErr error
	for range 5 {
		s, err := launch(bin, dir, data, cred, 0)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	_ = os.RemoveAll(dir)
	return nil, lastErr
}

// launch runs the postmaster as a direct child (not through pg_ctl) so that a
// parent-death signal kills it with the test binary.
func launch(bin, dir, data string, cred *syscall.Credential, port int) (*server, error) {
	if port == 0 {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		port = p
	}
	logPath := filepath.Join(dir, "postgres.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "port="+strconv.Itoa(port),
		"-c", "unix_socket_directories="+dir,
		"-c", "fsync=off",
		// synchronous_commit stays on: a commit is then in the WAL (written, with
		// fsync off not flushed to disk) when it returns, so a crash of the server
		// (Restart) loses nothing that was committed, as in production.
		"-c", "full_page_writes=off",
		"-c", "max_connections=200",
		"-c", "shared_buffers=128MB",
		"-c", "max_wal_size=2GB",
		"-c", "checkpoint_timeout=30min",
		"-c", "autovacuum=off",
	)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL, Setpgid: true}
	s := &server{dir: dir, data: data, bin: bin, cred: cred, port: port, cmd: cmd, exited: make(chan struct{})}

	// The parent-death signal fires when the thread that forked the child ends,
	// so the child is started and waited for from one locked thread.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			close(s.exited)
			return
		}
		started <- nil
		_ = cmd.Wait()
		_ = logFile.Close()
		close(s.exited)
	}()
	if err := <-started; err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := s.exec(ctx, "SELECT 1")
		cancel()
		if err == nil {
			return s, nil
		}
		select {
		case <-s.exited:
			return nil, fmt.Errorf("postgres exited at start: %s", tail(logPath))
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-s.exited
			return nil, fmt.Errorf("postgres did not accept connections in 30s: %w: %s", err, tail(logPath))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// findBinaries returns the newest /usr/lib/postgresql/*/bin holding initdb and
// postgres, installing Debian's postgresql package when there is none and the
// process is root.
func findBinaries() (string, error) {
	if dir := os.Getenv("PGTEST_POSTGRES_BIN"); dir != "" {
		for _, b := range []string{"initdb", "postgres"} {
			if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
				return "", fmt.Errorf("PGTEST_POSTGRES_BIN=%s has no %s", dir, b)
			}
		}
		return dir, nil
	}
	if dir, ok := newestBinDir(); ok {
		return dir, nil
	}
	if os.Geteuid() != 0 {
		return "", errors.New("no PostgreSQL binaries in /usr/lib/postgresql/*/bin, and not root to apt-get install postgresql")
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return "", errors.New("no PostgreSQL binaries in /usr/lib/postgresql/*/bin and no apt-get to install them")
	}
	install := func() ([]byte, error) {
		c := exec.Command("apt-get", "install", "-y", "--no-install-recommends", "postgresql")
		c.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		return c.CombinedOutput()
	}
	if _, err := install(); err != nil {
		// The package lists may be missing or stale.
		if upd, uerr := exec.Command("apt-get", "update").CombinedOutput(); uerr != nil {
			return "", fmt.Errorf("apt-get update: %w: %s", uerr, lastLines(upd))
		}
		if out, err := install(); err != nil {
			return "", fmt.Errorf("apt-get install postgresql: %w: %s", err, lastLines(out))
		}
	}
	if dir, ok := newestBinDir(); ok {
		return dir, nil
	}
	return "", errors.New("apt-get installed postgresql but /usr/lib/postgresql/*/bin has no initdb")
}

func lastLines(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, " | ")
}

func newestBinDir() (string, bool) {
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	type cand struct {
		dir string
		ver int
	}
	var cands []cand
	for _, m := range matches {
		if _, err := os.Stat(filepath.Join(m, "initdb")); err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(m, "postgres")); err != nil {
			continue
		}
		v, _ := strconv.Atoi(filepath.Base(filepath.Dir(m)))
		cands = append(cands, cand{m, v})
	}
	if len(cands) == 0 {
		return "", false
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].ver > cands[j].ver })
	return cands[0].dir, true
}

// baseDirs are where the server's directory may go: memory first (a test
// server's data need not survive), then the temporary directory.
func baseDirs() []string { return []string{"/dev/shm", os.TempDir()} }

func makeDir() (string, error) {
	var err error
	for _, base := range baseDirs() {
		var dir string
		if dir, err = os.MkdirTemp(base, dirPrefix); err == nil {
			return dir, nil
		}
	}
	return "", err
}

// removeStaleDirs removes the directories of earlier test binaries that died
// without cleaning up (their owner process is gone).
func removeStaleDirs() {
	var dirs []string
	for _, base := range baseDirs() {
		m, _ := filepath.Glob(filepath.Join(base, dirPrefix+"*"))
		dirs = append(dirs, m...)
	}
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "owner.pid"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = os.RemoveAll(d)
		}
	}
}
