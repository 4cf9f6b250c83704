// Package rsyslogtest is the tests' real-rsyslog harness: a CA and
// certificates made at test time, an rsyslogd run in the foreground on
// loopback ports (UDP, TCP, TLS, a Unix socket) with its own configuration
// and output files, and a strict RFC 5424 parser for what it wrote. Only
// tests import it (it imports "testing").
package rsyslogtest

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
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PKI is a CA, a server certificate signed by it (for ServerName and
// 127.0.0.1) and a client certificate ("sensor.test"), written as PEM files.
type PKI struct {
	CAFile, ServerCert, ServerKey, ClientCert, ClientKey string
	// ServerPair is the server certificate loaded, for a Go TLS listener.
	ServerPair tls.Certificate
}

// PKIOptions: where the files go and the server's name.
type PKIOptions struct {
	Dir        string // default: a new t.TempDir()
	Prefix     string // prefixes the file names, so several PKIs can share Dir
	ServerName string // default "syslog.test"
}

// NewPKI makes a PKI valid from an hour ago for a day.
func NewPKI(t testing.TB, o PKIOptions) *PKI {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	if o.ServerName == "" {
		o.ServerName = "syslog.test"
	}
	name := func(n string) string {
		if o.Prefix != "" {
			n = o.Prefix + "-" + n
		}
		return filepath.Join(o.Dir, n)
	}
	p := &PKI{CAFile: name("ca.pem"), ServerCert: name("server.pem"), ServerKey: name("server-key.pem"),
		ClientCert: name("client.pem"), ClientKey: name("client-key.pem")}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: o.Prefix + " exfilwatch test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, p.CAFile, "CERTIFICATE", caDER)
	leaf := func(serial int64, cn string, ips []net.IP, usage []x509.ExtKeyUsage, certFile, keyFile string) (certPEM, keyPEM []byte) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), DNSNames: []string{cn}, IPAddresses: ips,
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: usage}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return writePEM(t, certFile, "CERTIFICATE", der), writePEM(t, keyFile, "EC PRIVATE KEY", kder)
	}
	// The server pair also serves as a client's (check-config's tests
	// configure one certificate for both ends).
	certPEM, keyPEM := leaf(2, o.ServerName, []net.IP{net.ParseIP("127.0.0.1")},
		[]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, p.ServerCert, p.ServerKey)
	leaf(3, "sensor.test", nil, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, p.ClientCert, p.ClientKey)
	if p.ServerPair, err = tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	return p
}

func writePEM(t testing.TB, path, typ string, der []byte) []byte {
	t.Helper()
	b := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return b
}
