package kube_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/ratchet-cni/ratchet/internal/testutil/etcdtest"
)

// k8sBin returns the directory of the built Kubernetes binaries: env
// RATCHET_K8S_BIN, else test/k8s/build.sh's cache. The test is skipped,
// saying so, when kube-apiserver or kubectl is not there (make test
// builds them first: the k8s-bins target).
func k8sBin(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("RATCHET_K8S_BIN")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".cache", "ratchet", "k8s-v1.37.2", "bin")
	}
	for _, b := range []string{"kube-apiserver", "kubectl"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			t.Skipf("no %s in %s (set RATCHET_K8S_BIN, or build them with `make k8s-bins`): %v", b, dir, err)
		}
	}
	if _, err := os.Stat(etcdtest.Binary); err != nil {
		t.Skipf("no etcd (%s): install etcd-server (make deps)", etcdtest.Binary)
	}
	return dir
}

// apiServer is a real kube-apiserver on Debian's etcd, on 127.0.0.1 of
// the test's own netns, with a static admin token (system:masters).
type apiServer struct {
	rest       *rest.Config
	client     *kubernetes.Clientset
	kubeconfig string
	kubectl    string
}

// startAPIServer starts etcd and kube-apiserver, both killed when the test
// ends, and waits until the API server is ready.
func startAPIServer(t *testing.T, bin string) *apiServer {
	t.Helper()
	etcd, _, _ := etcdtest.StartEtcdBinary(t)
	tlsFiles := etcdtest.GenerateTLS(t)
	dir := t.TempDir()
	const token = "ratchet-test-admin-token"
	tokens := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(token+",admin,admin,system:masters\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	saKey, saPub := serviceAccountKeys(t, dir)
	port := etcdtest.FreePort(t)
	cmd := exec.Command(filepath.Join(bin, "kube-apiserver"),
		"--etcd-servers="+strings.Join(etcd, ","),
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", port),
		"--cert-dir="+filepath.Join(dir, "certs"),
		"--tls-cert-file="+tlsFiles.ServerCert, "--tls-private-key-file="+tlsFiles.ServerKey,
		"--token-auth-file="+tokens, "--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+saPub, "--service-account-signing-key-file="+saKey,
		"--service-cluster-ip-range=203.0.113.0/24",
		// No controller manager makes the default service account, and no
		// kubelet runs the pods: admission would wait for one.
		"--disable-admission-plugins=ServiceAccount",
		"--enable-priority-and-fairness=false",
		// The kubernetes service's endpoint would be this loopback address.
		"--endpoint-reconciler-type=none")
	logFile, err := os.Create(filepath.Join(dir, "kube-apiserver.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		logFile.Close()
	})
	host := fmt.Sprintf("https://127.0.0.1:%d", port)
	rc := &rest.Config{Host: host, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAFile: tlsFiles.CA}}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		body, err := client.RESTClient().Get().AbsPath("/readyz").DoRaw(context.Background())
		if err == nil && string(body) == "ok" {
			break
		}
		stopped := false
		select {
		case <-exited:
			stopped = true
		default:
		}
		if time.Now().After(deadline) || stopped {
			log, _ := os.ReadFile(logFile.Name())
			t.Fatalf("kube-apiserver not ready (exited: %v): %v %s\nlog tail:\n%s", stopped, err, body, tail(string(log), 3000))
		}
		time.Sleep(200 * time.Millisecond)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: %q, certificate-authority: %q}
users:
- name: admin
  user: {token: %q}
contexts:
- name: test
  context: {cluster: test, user: admin}
current-context: test
`, host, tlsFiles.CA, token)
	if err := os.WriteFile(kubeconfig, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	return &apiServer{rest: rc, client: client, kubeconfig: kubeconfig, kubectl: filepath.Join(bin, "kubectl")}
}

// as returns a client that acts as user (impersonated by the admin), to
// run code with the permissions a role grants.
func (s *apiServer) as(t *testing.T, user string) kubernetes.Interface {
	t.Helper()
	rc := rest.CopyConfig(s.rest)
	rc.Impersonate = rest.ImpersonationConfig{UserName: user}
	c, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// run runs kubectl against the server and fails the test if it fails.
func (s *apiServer) run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(s.kubectl, append([]string{"--kubeconfig", s.kubeconfig}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// serviceAccountKeys writes an ECDSA key pair for the API server's
// service-account tokens: the private key (PKCS #8) and the public key.
func serviceAccountKeys(t *testing.T, dir string) (key, pub string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	key, pub = filepath.Join(dir, "sa-key.pem"), filepath.Join(dir, "sa-pub.pem")
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	return key, pub
}
