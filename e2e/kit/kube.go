//go:build e2e

package kit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Kube runs kubectl against one context and namespace. Every call has a timeout so a hanging API
// server cannot stall the suite until the global test timeout.
type Kube struct {
	context   string
	namespace string
}

// Run runs kubectl with --context and, for namespaced calls, -n.
func (k *Kube) Run(ctx context.Context, namespaced bool, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, kubectlTimeout)
	defer cancel()
	full := []string{"--context", k.context}
	if namespaced {
		full = append(full, "-n", k.namespace)
	}
	return RunCmd(ctx, "", nil, "kubectl", append(full, args...)...)
}

// NS runs a namespaced kubectl command.
func (k *Kube) NS(ctx context.Context, args ...string) (string, error) {
	return k.Run(ctx, true, args...)
}

// GetJSON runs `kubectl get ... -o json` and decodes the result into out.
func (k *Kube) GetJSON(ctx context.Context, namespaced bool, out any, args ...string) error {
	stdout, err := k.Run(ctx, namespaced, append(append([]string{"get"}, args...), "-o", "json")...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(stdout), out); err != nil {
		return fmt.Errorf("decode kubectl get %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// IsNotFound reports whether a kubectl error says the object does not exist.
func IsNotFound(err error) bool {
	var ce *cmdError
	return errors.As(err, &ce) && strings.Contains(ce.Stderr, "NotFound")
}

// SecretValue returns one decoded key of a Secret in the namespace.
func (k *Kube) SecretValue(ctx context.Context, name, key string) (string, error) {
	var s struct {
		Data map[string]string `json:"data"`
	}
	if err := k.GetJSON(ctx, true, &s, "secret", name); err != nil {
		return "", fmt.Errorf("secret %s: %w", name, err)
	}
	enc, ok := s.Data[key]
	if !ok {
		return "", fmt.Errorf("secret %s has no key %q", name, key)
	}
	dec, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return "", fmt.Errorf("secret %s key %s: %w", name, key, err)
	}
	return string(dec), nil
}

// PodInfo is the part of a Pod the suite looks at.
type PodInfo struct {
	Name    string
	Ready   bool
	Deleted bool // has a deletionTimestamp (terminating)
	IP      string
}

// Pods lists the pods matching a label selector.
func (k *Kube) Pods(ctx context.Context, selector string) ([]PodInfo, error) {
	var list struct {
		Items []struct {
			Metadata struct {
				Name              string  `json:"name"`
				DeletionTimestamp *string `json:"deletionTimestamp"`
			} `json:"metadata"`
			Status struct {
				PodIP      string `json:"podIP"`
				Conditions []struct {
					Type   string `json:"type"`
					Status string `json:"status"`
				} `json:"conditions"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := k.GetJSON(ctx, true, &list, "pods", "-l", selector); err != nil {
		return nil, err
	}
	out := make([]PodInfo, 0, len(list.Items))
	for _, it := range list.Items {
		p := PodInfo{Name: it.Metadata.Name, Deleted: it.Metadata.DeletionTimestamp != nil, IP: it.Status.PodIP}
		for _, c := range it.Status.Conditions {
			if c.Type == "Ready" && c.Status == "True" {
				p.Ready = true
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// WaitReadyPods waits until exactly want pods match the selector, all Ready and none terminating.
func (k *Kube) WaitReadyPods(ctx context.Context, selector string, want int, timeout time.Duration) ([]PodInfo, error) {
	var last []PodInfo
	err := Poll(ctx, timeout, 2*time.Second, func() (bool, error) {
		ps, err := k.Pods(ctx, selector)
		if err != nil {
			return false, err
		}
		last = ps
		ready := 0
		for _, p := range ps {
			if p.Deleted {
				return false, nil
			}
			if p.Ready {
				ready++
			}
		}
		return ready == want && len(ps) == want, nil
	})
	if err != nil {
		return nil, fmt.Errorf("waiting for %d Ready pods %q (last seen %+v): %w", want, selector, last, err)
	}
	return last, nil
}

// RolloutStatus waits for a Deployment rollout to finish.
func (k *Kube) RolloutStatus(ctx context.Context, deployment string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout+10*time.Second)
	defer cancel()
	_, err := RunCmd(ctx, "", nil, "kubectl", "--context", k.context, "-n", k.namespace,
		"rollout", "status", "deployment/"+deployment, "--timeout", timeout.String())
	if err != nil {
		return fmt.Errorf("rollout of deployment/%s: %w", deployment, err)
	}
	return nil
}

// Exec runs a shell script in a container of a workload (e.g. deploy/registry).
func (k *Kube) Exec(ctx context.Context, target, container, script string) (string, error) {
	out, err := k.NS(ctx, "exec", target, "-c", container, "--", "sh", "-c", script)
	if err != nil {
		return "", fmt.Errorf("exec in %s/%s: %w", target, container, err)
	}
	return out, nil
}

// ExecStdin runs a command in a pod of the namespace with stdin (kubectl exec -i).
func (k *Kube) ExecStdin(ctx context.Context, pod, stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kubectl", append([]string{"--context", k.context, "-n", k.namespace, "exec", "-i", pod, "--"}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("kubectl exec -i %s %s: %w\n%s", pod, args[0], err, Tail(stderr.String()+stdout.String(), 20))
	}
	return stdout.String(), nil
}

// Events returns the namespace's events, oldest first, for failure diagnostics.
func (k *Kube) Events(ctx context.Context) string {
	out, err := k.NS(ctx, "get", "events", "--sort-by", ".lastTimestamp")
	if err != nil {
		return "events unavailable: " + err.Error()
	}
	return Tail(out, 40)
}

// JobResult is the outcome of a Job.
type JobResult struct {
	Succeeded bool
	Duration  time.Duration
	Logs      string
}

// RunJobFromCronJob creates a Job from a CronJob (like `kubectl create job --from`) and waits until
// it completes or fails. A failed Job is returned as an error together with its logs.
func (k *Kube) RunJobFromCronJob(ctx context.Context, cronJob, job string, timeout time.Duration) (*JobResult, error) {
	start := time.Now()
	if _, err := k.NS(ctx, "create", "job", job, "--from", "cronjob/"+cronJob); err != nil {
		return nil, fmt.Errorf("create job %s from cronjob/%s: %w", job, cronJob, err)
	}
	return k.WaitJob(ctx, job, start, timeout)
}

// WaitJob waits until an existing Job completes or fails; start is when it was created. A failed
// Job is returned as an error together with its logs.
func (k *Kube) WaitJob(ctx context.Context, job string, start time.Time, timeout time.Duration) (*JobResult, error) {
	res := &JobResult{}
	err := Poll(ctx, timeout, 2*time.Second, func() (bool, error) {
		var j struct {
			Status struct {
				Succeeded  int `json:"succeeded"`
				Conditions []struct {
					Type    string `json:"type"`
					Status  string `json:"status"`
					Message string `json:"message"`
				} `json:"conditions"`
			} `json:"status"`
		}
		if err := k.GetJSON(ctx, true, &j, "job", job); err != nil {
			return false, err
		}
		for _, c := range j.Status.Conditions {
			if c.Status != "True" {
				continue
			}
			switch c.Type {
			case "Complete", "SuccessCriteriaMet":
				res.Succeeded = true
				return true, nil
			case "Failed", "FailureTarget":
				return true, nil
			}
		}
		return false, nil
	})
	res.Duration = time.Since(start)
	logs := k.jobLogs(ctx, job)
	res.Logs = logs
	if err != nil {
		return res, fmt.Errorf("job %s did not finish in %s: %w\njob logs:\n%s\nevents:\n%s", job, timeout, err, Tail(logs, 40), k.Events(ctx))
	}
	if !res.Succeeded {
		return res, fmt.Errorf("job %s failed after %s\njob logs:\n%s\nevents:\n%s", job, res.Duration.Round(time.Second), Tail(logs, 60), k.Events(ctx))
	}
	return res, nil
}

// jobLogs collects the logs of every container (init containers first, in order) of every pod of
// a Job. `kubectl logs job/x --all-containers` gives up at the first container that never started,
// which hides the output of the step that failed.
func (k *Kube) jobLogs(ctx context.Context, job string) string {
	var pods struct {
		Items []struct {
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Spec struct {
				InitContainers []struct {
					Name string `json:"name"`
				} `json:"initContainers"`
				Containers []struct {
					Name string `json:"name"`
				} `json:"containers"`
			} `json:"spec"`
			Status struct {
				InitContainerStatuses []containerStatus `json:"initContainerStatuses"`
				ContainerStatuses     []containerStatus `json:"containerStatuses"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := k.GetJSON(ctx, true, &pods, "pods", "-l", "job-name="+job); err != nil {
		return "logs unavailable: " + err.Error()
	}
	var b strings.Builder
	for _, p := range pods.Items {
		states := map[string]string{}
		for _, cs := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
			states[cs.Name] = cs.describe()
		}
		var names []string
		for _, c := range p.Spec.InitContainers {
			names = append(names, c.Name)
		}
		for _, c := range p.Spec.Containers {
			names = append(names, c.Name)
		}
		for _, c := range names {
			fmt.Fprintf(&b, "--- pod %s container %s (%s)\n", p.Metadata.Name, c, states[c])
			out, err := k.NS(ctx, "logs", p.Metadata.Name, "-c", c, "--tail", "100")
			if err != nil {
				b.WriteString("(no logs: container did not start)\n")
				continue
			}
			b.WriteString(out)
			if !strings.HasSuffix(out, "\n") {
				b.WriteString("\n")
			}
		}
	}
	return b.String()
}

// containerStatus is the state of one container of a pod.
type containerStatus struct {
	Name  string `json:"name"`
	State struct {
		Waiting *struct {
			Reason string `json:"reason"`
		} `json:"waiting"`
		Running    *struct{} `json:"running"`
		Terminated *struct {
			ExitCode int    `json:"exitCode"`
			Reason   string `json:"reason"`
		} `json:"terminated"`
	} `json:"state"`
}

func (c containerStatus) describe() string {
	switch {
	case c.State.Terminated != nil:
		return fmt.Sprintf("terminated: exit %d %s", c.State.Terminated.ExitCode, c.State.Terminated.Reason)
	case c.State.Running != nil:
		return "running"
	case c.State.Waiting != nil:
		return "waiting: " + c.State.Waiting.Reason
	}
	return "unknown"
}

var forwardingRE = regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+)`)

// PortForward starts `kubectl port-forward` to a target in namespace (svc/NAME, pod/NAME,
// deploy/NAME) for the remote ports, each on a free local port chosen by kubectl, and returns
// 127.0.0.1:<port> per remote port (same order) and a stop function that kills exactly that
// process. kubectl listens on the ports in the order given and prints one "Forwarding from" line
// for each, so the lines are matched to the ports in order (the remote port it prints for a
// Service is the pod's target port, not the one asked for).
func (k *Kube) PortForward(ctx context.Context, namespace, target string, remotePorts ...string) ([]string, func(), error) {
	args := []string{"--context", k.context, "-n", namespace, "port-forward", "--address", "127.0.0.1", target}
	for _, p := range remotePorts {
		args = append(args, ":"+p)
	}
	cmd := exec.Command("kubectl", args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, fmt.Errorf("port-forward pipe: %w", err)
	}
	stderr := &syncWriter{w: &strings.Builder{}}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start port-forward: %w", err)
	}
	stop := func() {
		_ = cmd.Process.Kill() // only the process started here; Wait reaps it
		_ = cmd.Wait()
	}
	found := make(chan string, len(remotePorts))
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := forwardingRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- "127.0.0.1:" + m[1]:
				default:
				}
			}
		}
		// Keep draining so kubectl never blocks on a full pipe.
		_, _ = io.Copy(io.Discard, stdout)
	}()
	addrs := make([]string, 0, len(remotePorts))
	deadline := time.After(30 * time.Second)
	for len(addrs) < len(remotePorts) {
		select {
		case addr := <-found:
			addrs = append(addrs, addr)
		case <-deadline:
			stop()
			return nil, nil, fmt.Errorf("port-forward to %s/%s %v did not start in 30s: %s", namespace, target, remotePorts, stderr.String())
		case <-ctx.Done():
			stop()
			return nil, nil, ctx.Err()
		}
	}
	return addrs, stop, nil
}

// syncWriter serialises writes and reads of kubectl's stderr (written by exec's copying goroutine).
type syncWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}

// Poll calls check every interval until it returns true, an error, or the timeout passes.
func Poll(ctx context.Context, timeout, interval time.Duration, check func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		done, err := check()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("timed out after %s", timeout)
		case <-t.C:
		}
	}
}

// NodeHasImage reports whether some node lists image (with or without its docker.io/ prefix)
// among the images it holds. A node lists at most 50 (kubelet's nodeStatusMaxImages), the
// largest first: a miss on a node with more is a false "no", never a false "yes".
func (k *Kube) NodeHasImage(ctx context.Context, image string) (bool, error) {
	var nodes struct {
		Items []struct {
			Status struct {
				Images []struct {
					Names []string `json:"names"`
				} `json:"images"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := k.GetJSON(ctx, false, &nodes, "nodes"); err != nil {
		return false, err
	}
	for _, n := range nodes.Items {
		for _, im := range n.Status.Images {
			for _, name := range im.Names {
				if name == image || name == "docker.io/"+image || name == "docker.io/library/"+image {
					return true, nil
				}
			}
		}
	}
	return false, nil
}
