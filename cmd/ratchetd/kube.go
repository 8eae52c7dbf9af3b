package main

import (
	"context"
	"log/slog"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ratchet-cni/ratchet/internal/kube"
	"github.com/ratchet-cni/ratchet/internal/labop"
	"github.com/ratchet-cni/ratchet/internal/netconf"
	"github.com/ratchet-cni/ratchet/internal/topology"
)

// kubeClient makes the Kubernetes client of kubeconfig: a kubeconfig
// file, or "in-cluster" for the service account of the pod ratchetd runs
// in. It only reads files: the API server is first reached by startKube.
func kubeClient(kubeconfig, node string) (kubernetes.Interface, error) {
	var rc *rest.Config
	var err error
	if kubeconfig == "in-cluster" {
		rc, err = rest.InClusterConfig()
	} else {
		rc, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	}
	if err != nil {
		return nil, err
	}
	rc.UserAgent = "ratchetd/" + node
	return kubernetes.NewForConfig(rc)
}

// startKube starts reporting the node's pod links to Kubernetes (see
// internal/kube) through client. It returns a channel closed once the
// reporter has stopped, after ctx is done.
func startKube(ctx context.Context, client kubernetes.Interface, conf *netconf.NetConf, log *slog.Logger) <-chan struct{} {
	cfg := kube.Config{Client: client, Node: conf.Node.Name,
		Links: kube.LocalLinks{Dir: conf.Store.Dir, Socket: conf.Store.AgentSocket,
			Limits: labop.Limits{MaxLinksPerPod: conf.MaxLinksPerPod, MaxParkedEnds: conf.MaxParkedEnds}},
		Rules: topology.Rules{AllowCrossNamespace: conf.AllowCrossNamespace, LegacyKeys: conf.LegacyKeys, MaxLinks: conf.MaxLinksPerPod},
		Log:   log.With("part", "kubernetes")}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := kube.Run(ctx, cfg); err != nil {
			log.Error("kubernetes", "error", err)
		}
	}()
	return done
}
