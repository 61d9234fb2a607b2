package spaceone

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
)

// Names of the certificate and key in Options.CertDir (a kubernetes.io/tls Secret's keys).
const (
	CertFile = "tls.crt"
	KeyFile  = "tls.key"
)

// tlsConfig serves the certificate of CertDir, reloaded when it changes, or a
// self-signed one when allowed.
func (s *Server) tlsConfig(ctx context.Context) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	switch {
	case s.opts.CertDir != "":
		w, err := certwatcher.New(filepath.Join(s.opts.CertDir, CertFile), filepath.Join(s.opts.CertDir, KeyFile))
		if err != nil {
			return nil, fmt.Errorf("loading the HTTP API's certificate from %s: %w", s.opts.CertDir, err)
		}
		go func() {
			if err := w.Start(ctx); err != nil {
				s.log.Error(err, "Watching the HTTP API's certificate failed")
			}
		}()
		cfg.GetCertificate = w.GetCertificate
	case s.opts.SelfSigned:
		cert, err := SelfSignedCertificate(s.opts.SelfSignedHosts, time.Now())
		if err != nil {
			return nil, err
		}
		s.log.Info("Serving the HTTP API with a self-signed certificate", "sha256", Fingerprint(cert.Leaf))
		cfg.Certificates = []tls.Certificate{cert}
	default:
		return nil, errors.New("the HTTP API has no certificate: set a certificate directory or allow a self-signed one")
	}
	return cfg, nil
}

// SelfSignedCertificate makes a one-year ECDSA P-256 server certificate for localhost,
// the loopback addresses, the host name and hosts.
func SelfSignedCertificate(hosts []string, now time.Time) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "cost-analysis-operator-api"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(1, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		hosts = append([]string{h}, hosts...)
	}
	for _, h := range hosts {
		if h = strings.TrimSpace(h); h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// Fingerprint is a certificate's SHA-256 fingerprint, as openssl prints it.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(parts, ":")
}
