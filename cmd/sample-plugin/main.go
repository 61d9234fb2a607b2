// Command sample-plugin serves the sample SpaceONE cost-analysis plugin
// (internal/sampleplugin) over gRPC: a plugin that makes up its data and can be told,
// through a DataSource's plugin options, to fail, stall or misbehave.
//
//	sample-plugin --listen :50051 [--tls-cert-file cert.pem --tls-key-file key.pem]
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/costops/cost-analysis-operator/internal/sampleplugin"
)

func main() {
	if err := run(); err != nil {
		slog.Error("Sample plugin failed", "err", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", ":50051", "address to serve gRPC on")
	certFile := flag.String("tls-cert-file", "", "PEM certificate to serve TLS with (plaintext when empty)")
	keyFile := flag.String("tls-key-file", "", "PEM key of --tls-cert-file")
	verbose := flag.Bool("v", false, "log every call")
	flag.Parse()

	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(logger)

	opts := []sampleplugin.Option{sampleplugin.WithLogger(logger)}
	if *certFile != "" || *keyFile != "" {
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			return fmt.Errorf("loading the TLS key pair: %w", err)
		}
		creds := credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		opts = append(opts, sampleplugin.WithServerOptions(grpc.Creds(creds)))
	}

	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := sampleplugin.New(opts...)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		logger.Info("Stopping: waiting for the calls in flight")
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	logger.Info("Serving the sample plugin", "addr", lis.Addr().String(), "tls", *certFile != "")
	if err := srv.Serve(lis); err != nil {
		return err
	}
	<-stopped
	logger.Info("Stopped")
	return nil
}
