// Package topology turns what a pod declares (CNI_ARGS and pod
// annotations) into the pod links it consents to. It validates everything
// and touches nothing.
package topology

import (
	"fmt"
	"strings"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ratchet-cni/ratchet/internal/netconf"
)

// PodID identifies a pod: its Kubernetes namespace and name. Outside
// Kubernetes (no K8S_POD_NAME in CNI_ARGS) it is the container ID with an
// empty namespace.
type PodID struct {
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	UID       string `json:"uid,omitempty"`
}

// String is "namespace/name", or the name alone outside Kubernetes.
func (p PodID) String() string {
	if p.Namespace == "" {
		return p.Name
	}
	return p.Namespace + "/" + p.Name
}

// maxCNIArgs bounds CNI_ARGS: runtimes send a few short pairs.
const maxCNIArgs = 64 << 10

// isContainerID reports whether s matches ^[A-Za-z0-9][A-Za-z0-9_.\-]*$:
// runtimes use hex ids or names ("default-e2e-ctr1"). Written out rather
// than a package-level regexp, which every process start would compile.
func isContainerID(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '.' && c != '-') {
			return false
		}
	}
	return s != ""
}

// PodFromArgs reads the pod's identity from CNI_ARGS
// (K8S_POD_NAMESPACE, K8S_POD_NAME, K8S_POD_UID), falling back to the
// container ID.
func PodFromArgs(cniArgs, container string) (PodID, error) {
	if len(cniArgs) > maxCNIArgs {
		return PodID{}, types.NewError(types.ErrInvalidEnvironmentVariables, fmt.Sprintf("CNI_ARGS is %d bytes, more than %d", len(cniArgs), maxCNIArgs), "")
	}
	var pod PodID
	for _, pair := range strings.Split(cniArgs, ";") {
		if pair == "" {
			continue
		}
		k, v, ok := strings.Cut(pair, "=")
		if !ok {
			return PodID{}, types.NewError(types.ErrInvalidEnvironmentVariables, fmt.Sprintf("CNI_ARGS: %q is not KEY=VALUE", pair), "")
		}
		switch k {
		case "K8S_POD_NAMESPACE":
			pod.Namespace = v
		case "K8S_POD_NAME":
			pod.Name = v
		case "K8S_POD_UID":
			pod.UID = v
		}
	}
	// Without both, this is not a Kubernetes pod (podman, for one, sends
	// K8S_POD_NAME alone, with the container's name): the container is the
	// pod.
	if pod.Name == "" || pod.Namespace == "" {
		if !isContainerID(container) || len(container) > 253 {
			return PodID{}, types.NewError(types.ErrInvalidEnvironmentVariables, fmt.Sprintf("CNI_CONTAINERID %q cannot name a pod", container), "")
		}
		return PodID{Name: container, UID: pod.UID}, nil
	}
	if !netconf.IsDNSName(pod.Name) || len(pod.Name) > 253 {
		return PodID{}, types.NewError(types.ErrInvalidEnvironmentVariables, fmt.Sprintf("CNI_ARGS K8S_POD_NAME %q is not a Kubernetes object name", pod.Name), "")
	}
	if !netconf.IsDNSName(pod.Namespace) || len(pod.Namespace) > 63 {
		return PodID{}, types.NewError(types.ErrInvalidEnvironmentVariables, fmt.Sprintf("CNI_ARGS K8S_POD_NAMESPACE %q is not a Kubernetes namespace name", pod.Namespace), "")
	}
	return pod, nil
}
