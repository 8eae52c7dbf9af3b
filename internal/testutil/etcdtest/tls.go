package etcdtest

import (
	"context"
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

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// GenerateTLS writes, in a new directory of t's, a CA and a server
// certificate (for 127.0.0.1 and localhost) and a client certificate that
// the CA signed.
func GenerateTLS(t testing.TB) TLSFiles {
	t.Helper()
	dir := t.TempDir()
	caKey, caCert, caDER := newCert(t, "ratchet test CA", nil, nil, func(c *x509.Certificate) {
		c.IsCA, c.BasicConstraintsValid = true, true
		c.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	})
	f := TLSFiles{CA: filepath.Join(dir, "ca.pem"), CAKey: filepath.Join(dir, "ca-key.pem")}
	writePEM(t, f.CA, "CERTIFICATE", caDER)
	caKeyDER, err := x509.MarshalPKCS8PrivateKey(caKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, f.CAKey, "PRIVATE KEY", caKeyDER)
	for _, who := range []string{"server", "client"} {
		key, _, der := newCert(t, "ratchet test "+who, caCert, caKey, func(c *x509.Certificate) {
			c.KeyUsage = x509.KeyUsageDigitalSignature
			if who == "server" {
				c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
				c.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
				c.DNSNames = []string{"localhost"}
			} else {
				c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
			}
		})
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		cert, keyFile := filepath.Join(dir, who+".pem"), filepath.Join(dir, who+"-key.pem")
		writePEM(t, cert, "CERTIFICATE", der)
		writePEM(t, keyFile, "PRIVATE KEY", keyDER)
		if who == "server" {
			f.ServerCert, f.ServerKey = cert, keyFile
		} else {
			f.ClientCert, f.ClientKey = cert, keyFile
		}
	}
	return f
}

// ClientCertFor writes, next to f's files, a client certificate with
// common name cn signed by f's CA, and its key: with --client-cert-auth
// etcd takes cn as the user name.
func ClientCertFor(t testing.TB, f TLSFiles, cn string) (cert, key string) {
	t.Helper()
	caCert, err := tls.LoadX509KeyPair(f.CA, f.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	parent, err := x509.ParseCertificate(caCert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	parentKey, ok := caCert.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		t.Fatalf("CA key %s is not ECDSA", f.CAKey)
	}
	k, _, der := newCert(t, cn, parent, parentKey, func(c *x509.Certificate) {
		c.KeyUsage = x509.KeyUsageDigitalSignature
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	})
	keyDER, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(f.CA)
	cert, key = filepath.Join(dir, "client-"+cn+".pem"), filepath.Join(dir, "client-"+cn+"-key.pem")
	writePEM(t, cert, "CERTIFICATE", der)
	writePEM(t, key, "PRIVATE KEY", keyDER)
	return cert, key
}

func newCert(t testing.TB, cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, edit func(*x509.Certificate)) (*ecdsa.PrivateKey, *x509.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	edit(tmpl)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert, der
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// StartEmbeddedEtcdAuth starts an embedded etcd that requires client
// certificates (signed by the returned files' CA) and has auth on: the
// user of a certificate is its common name (ClientCertFor). It returns a
// client of the root user, closed when the test ends, to set up the other
// users and roles.
func StartEmbeddedEtcdAuth(t testing.TB) ([]string, TLSFiles, *clientv3.Client) {
	t.Helper()
	f := GenerateTLS(t)
	eps := StartEmbeddedEtcdTLS(t, f)
	cert, key := ClientCertFor(t, f, "root")
	tc, err := (transport.TLSInfo{CertFile: cert, KeyFile: key, TrustedCAFile: f.CA}).ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, TLS: tc, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.UserAddWithOptions(ctx, "root", "", &clientv3.UserAddOptions{NoPassword: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.UserGrantRole(ctx, "root", "root"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.AuthEnable(ctx); err != nil {
		t.Fatal(err)
	}
	return eps, f, cli
}
