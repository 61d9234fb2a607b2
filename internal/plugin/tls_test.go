package plugin

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/costops/cost-analysis-operator/internal/sampleplugin"
)

// selfSigned makes a certificate for plugin.test and 127.0.0.1, and its PEM.
func selfSigned(t *testing.T) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "plugin.test"},
		DNSNames:              []string{"plugin.test"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatal(err)
	}
	return cert, certPEM
}

func TestTLS(t *testing.T) {
	cert, caPEM := selfSigned(t)
	creds := credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	tlsAddr, _ := startPlugin(t, sampleplugin.WithServerOptions(grpc.Creds(creds)))
	plainAddr, _ := startPlugin(t)
	_, otherCA := selfSigned(t)

	cases := map[string]struct {
		addr string
		tls  *TLSConfig
		ok   bool
	}{
		"the plugin's CA and server name work":           {tlsAddr, &TLSConfig{CAPEM: caPEM, ServerName: "plugin.test"}, true},
		"the plugin's CA and its IP work":                {tlsAddr, &TLSConfig{CAPEM: caPEM}, true},
		"skipping verification works":                    {tlsAddr, &TLSConfig{InsecureSkipVerify: true}, true},
		"plaintext against TLS fails":                    {tlsAddr, nil, false},
		"the system roots do not trust a self-signed CA": {tlsAddr, &TLSConfig{ServerName: "plugin.test"}, false},
		"another CA fails":                               {tlsAddr, &TLSConfig{CAPEM: otherCA, ServerName: "plugin.test"}, false},
		"a wrong server name fails":                      {tlsAddr, &TLSConfig{CAPEM: caPEM, ServerName: "other.test"}, false},
		"TLS against plaintext fails":                    {plainAddr, &TLSConfig{InsecureSkipVerify: true}, false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := testClient(t, Options{Endpoint: tc.addr, TLS: tc.tls, Retries: -1, CallTimeout: 5 * time.Second})
			_, err := c.Init(testContext(t), nil, "ns")
			if tc.ok && err != nil {
				t.Fatalf("err %v", err)
			}
			if !tc.ok && !IsUnavailable(err) {
				t.Fatalf("err %v, want Unavailable", err)
			}
		})
	}
}
