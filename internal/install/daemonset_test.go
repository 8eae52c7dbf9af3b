package install

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseDaemonSetRef(t *testing.T) {
	for _, tc := range []struct {
		in, defNS string
		want      DaemonSetRef
		bad       bool
	}{
		{in: "kube-system/ratchet", want: DaemonSetRef{"kube-system", "ratchet"}},
		{in: "ratchet", defNS: "kube-system", want: DaemonSetRef{"kube-system", "ratchet"}},
		{in: "other/ratchet", defNS: "kube-system", want: DaemonSetRef{"other", "ratchet"}},
		{in: "ratchet", bad: true},                 // no namespace anywhere
		{in: "kube-system/", bad: true},            // no name
		{in: "kube-system/Ratchet", bad: true},     // not lower case
		{in: "kube-system/a/b", bad: true},         // a path, not a name
		{in: "kube-system/-ratchet", bad: true},    // must start alphanumeric
		{in: "kube-system/ratchet?x=1", bad: true}, // would change the URL
	} {
		got, err := ParseDaemonSetRef(tc.in, tc.defNS)
		if tc.bad {
			if err == nil {
				t.Errorf("ParseDaemonSetRef(%q, %q) = %v, want an error", tc.in, tc.defNS, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseDaemonSetRef(%q, %q) = %v, %v; want %v", tc.in, tc.defNS, got, err, tc.want)
		}
	}
}

// fakeAPIServer stands in for the API server's one DaemonSet GET: it
// checks the path and the bearer token and answers with status and body.
func fakeAPIServer(t *testing.T, status int, body string) (*httptest.Server, *APIServer) {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/apis/apps/v1/namespaces/kube-system/daemonsets/ratchet" {
			http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusTeapot)
			return
		}
		if r.Header.Get("Authorization") != "Bearer tok3n" {
			http.Error(w, `{"kind":"Status","code":401}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte("tok3n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return srv, &APIServer{URL: srv.URL, TokenFile: tok, Client: srv.Client()}
}

const (
	dsPresent  = `{"kind":"DaemonSet","apiVersion":"apps/v1","metadata":{"name":"ratchet","namespace":"kube-system","uid":"u1"},"spec":{}}`
	dsDeleting = `{"kind":"DaemonSet","apiVersion":"apps/v1","metadata":{"name":"ratchet","namespace":"kube-system","deletionTimestamp":"2026-12-06T03:00:00Z"}}`
	dsNotFound = `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}`
)

func TestShouldUninstall(t *testing.T) {
	ref := DaemonSetRef{"kube-system", "ratchet"}
	for _, tc := range []struct {
		name   string
		status int
		body   string
		state  DaemonSetState
		want   bool
	}{
		{"rollout: present", http.StatusOK, dsPresent, DaemonSetPresent, false},
		{"foreground deletion", http.StatusOK, dsDeleting, DaemonSetDeleted, true},
		{"gone", http.StatusNotFound, dsNotFound, DaemonSetDeleted, true},
		{"forbidden", http.StatusForbidden, `{"kind":"Status","code":403}`, DaemonSetUnknown, false},
		{"server error", http.StatusInternalServerError, "oops", DaemonSetUnknown, false},
		{"not json", http.StatusOK, "<html>", DaemonSetUnknown, false},
		{"another object", http.StatusOK, strings.ReplaceAll(dsPresent, `"name":"ratchet"`, `"name":"other"`), DaemonSetUnknown, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, api := fakeAPIServer(t, tc.status, tc.body)
			state, err := api.DaemonSet(context.Background(), ref)
			if state != tc.state {
				t.Errorf("DaemonSet = %v (%v), want %v", state, err, tc.state)
			}
			if (state == DaemonSetUnknown) != (err != nil) {
				t.Errorf("DaemonSet = %v with error %v: an error must come with, and only with, unknown", state, err)
			}
			got, why := ShouldUninstall(context.Background(), api, ref, 2*time.Second)
			if got != tc.want {
				t.Errorf("ShouldUninstall = %v (%s), want %v", got, why, tc.want)
			}
			if !strings.Contains(why, "kube-system/ratchet") {
				t.Errorf("reason %q does not name the DaemonSet", why)
			}
		})
	}
}

func TestShouldUninstallBadToken(t *testing.T) {
	_, api := fakeAPIServer(t, http.StatusNotFound, dsNotFound)
	if err := os.WriteFile(api.TokenFile, []byte("wrong"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A 401 (the ServiceAccount deleted first, say) is not a 404: keep.
	if got, why := ShouldUninstall(context.Background(), api, DaemonSetRef{"kube-system", "ratchet"}, 2*time.Second); got {
		t.Fatalf("ShouldUninstall with a rejected token = true (%s), want false", why)
	}
}

func TestShouldUninstallUnreachable(t *testing.T) {
	// A port nobody listens on: refused at once.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, api := fakeAPIServer(t, http.StatusNotFound, dsNotFound)
	api.URL = "https://" + addr
	got, why := ShouldUninstall(context.Background(), api, DaemonSetRef{"kube-system", "ratchet"}, 2*time.Second)
	if got || !strings.Contains(why, "stays installed") {
		t.Fatalf("ShouldUninstall with no API server = %v (%s), want false, staying installed", got, why)
	}
}

func TestShouldUninstallTimeout(t *testing.T) {
	hang := make(chan struct{})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(hang)
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte("tok3n"), 0o600); err != nil {
		t.Fatal(err)
	}
	api := &APIServer{URL: srv.URL, TokenFile: tok, Client: srv.Client()}
	start := time.Now()
	got, why := ShouldUninstall(context.Background(), api, DaemonSetRef{"kube-system", "ratchet"}, 200*time.Millisecond)
	if got {
		t.Fatalf("ShouldUninstall on a hanging API server = true (%s)", why)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("ShouldUninstall took %v, past its 200ms timeout", d)
	}
}

// TestInClusterAPIServer reads the API server's address from the
// environment and trusts only the CA in ca.crt, as in a pod.
func TestInClusterAPIServer(t *testing.T) {
	srv, _ := fakeAPIServer(t, http.StatusNotFound, dsNotFound)
	dir := t.TempDir()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), ca, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("tok3n"), 0o600); err != nil {
		t.Fatal(err)
	}
	host, port, err := net.SplitHostPort(strings.TrimPrefix(srv.URL, "https://"))
	if err != nil {
		t.Fatal(err)
	}

	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	if _, err := InClusterAPIServer(dir); err == nil {
		t.Fatal("InClusterAPIServer without KUBERNETES_SERVICE_HOST: no error")
	}

	t.Setenv("KUBERNETES_SERVICE_HOST", host)
	t.Setenv("KUBERNETES_SERVICE_PORT", port)
	api, err := InClusterAPIServer(dir)
	if err != nil {
		t.Fatal(err)
	}
	if state, err := api.DaemonSet(context.Background(), DaemonSetRef{"kube-system", "ratchet"}); state != DaemonSetDeleted {
		t.Fatalf("DaemonSet through the in-cluster config = %v (%v), want deleted", state, err)
	}

	// Another CA (httptest servers all share one certificate, so a fresh
	// self-signed one): the TLS check must refuse the server.
	otherCA := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: selfSigned(t)})
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), otherCA, 0o644); err != nil {
		t.Fatal(err)
	}
	api, err = InClusterAPIServer(dir)
	if err != nil {
		t.Fatal(err)
	}
	if state, err := api.DaemonSet(context.Background(), DaemonSetRef{"kube-system", "ratchet"}); state != DaemonSetUnknown || err == nil {
		t.Fatalf("DaemonSet with the wrong CA = %v (%v), want unknown with an error", state, err)
	}

	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), []byte("not pem"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := InClusterAPIServer(dir); err == nil {
		t.Fatal("InClusterAPIServer with a ca.crt that is not PEM: no error")
	}
}

// selfSigned is a CA certificate (DER) that signed nothing the test
// servers use.
func selfSigned(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "not the cluster CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
