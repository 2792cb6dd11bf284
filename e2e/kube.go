//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strings"
	"time"
)

// kube runs kubectl against one context and namespace. Every call has a timeout so a hanging API
// server cannot stall the suite until the global test timeout.
type kube struct {
	context   string
	namespace string
}

// run runs kubectl with --context and, for namespaced calls, -n.
func (k *kube) run(ctx context.Context, namespaced bool, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, kubectlTimeout)
	defer cancel()
	full := []string{"--context", k.context}
	if namespaced {
		full = append(full, "-n", k.namespace)
	}
	return runCmd(ctx, "", nil, "kubectl", append(full, args...)...)
}

// ns runs a namespaced kubectl command.
func (k *kube) ns(ctx context.Context, args ...string) (string, error) {
	return k.run(ctx, true, args...)
}

// getJSON runs `kubectl get ... -o json` and decodes the result into out.
func (k *kube) getJSON(ctx context.Context, namespaced bool, out any, args ...string) error {
	stdout, err := k.run(ctx, namespaced, append(append([]string{"get"}, args...), "-o", "json")...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(stdout), out); err != nil {
		return fmt.Errorf("decode kubectl get %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// isNotFound reports whether a kubectl error says the object does not exist.
func isNotFound(err error) bool {
	var ce *cmdError
	return errors.As(err, &ce) && strings.Contains(ce.Stderr, "NotFound")
}

// secretValue returns one decoded key of a Secret in the namespace.
func (k *kube) secretValue(ctx context.Context, name, key string) (string, error) {
	var s struct {
		Data map[string]string `json:"data"`
	}
	if err := k.getJSON(ctx, true, &s, "secret", name); err != nil {
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

// podInfo is the part of a Pod the suite looks at.
type podInfo struct {
	Name    string
	Ready   bool
	Deleted bool // has a deletionTimestamp (terminating)
	IP      string
}

// pods lists the pods matching a label selector.
func (k *kube) pods(ctx context.Context, selector string) ([]podInfo, error) {
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
	if err := k.getJSON(ctx, true, &list, "pods", "-l", selector); err != nil {
		return nil, err
	}
	out := make([]podInfo, 0, len(list.Items))
	for _, it := range list.Items {
		p := podInfo{Name: it.Metadata.Name, Deleted: it.Metadata.DeletionTimestamp != nil, IP: it.Status.PodIP}
		for _, c := range it.Status.Conditions {
			if c.Type == "Ready" && c.Status == "True" {
				p.Ready = true
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// waitReadyPods waits until exactly want pods match the selector, all Ready and none terminating.
func (k *kube) waitReadyPods(ctx context.Context, selector string, want int, timeout time.Duration) ([]podInfo, error) {
	var last []podInfo
	err := poll(ctx, timeout, 2*time.Second, func() (bool, error) {
		ps, err := k.pods(ctx, selector)
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

// rolloutStatus waits for a Deployment rollout to finish.
func (k *kube) rolloutStatus(ctx context.Context, deployment string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout+10*time.Second)
	defer cancel()
	_, err := runCmd(ctx, "", nil, "kubectl", "--context", k.context, "-n", k.namespace,
		"rollout", "status", "deployment/"+deployment, "--timeout", timeout.String())
	if err != nil {
		return fmt.Errorf("rollout of deployment/%s: %w", deployment, err)
	}
	return nil
}

// exec runs a shell script in a container of a workload (e.g. deploy/registry).
func (k *kube) exec(ctx context.Context, target, container, script string) (string, error) {
	out, err := k.ns(ctx, "exec", target, "-c", container, "--", "sh", "-c", script)
	if err != nil {
		return "", fmt.Errorf("exec in %s/%s: %w", target, container, err)
	}
	return out, nil
}

// events returns the namespace's events, oldest first, for failure diagnostics.
func (k *kube) events(ctx context.Context) string {
	out, err := k.ns(ctx, "get", "events", "--sort-by", ".lastTimestamp")
	if err != nil {
		return "events unavailable: " + err.Error()
	}
	return tail(out, 40)
}

// jobResult is the outcome of a Job.
type jobResult struct {
	Succeeded bool
	Duration  time.Duration
	Logs      string
}

// runJobFromCronJob creates a Job from a CronJob (like `kubectl create job --from`) and waits until
// it completes or fails. A failed Job is returned as an error together with its logs.
func (k *kube) runJobFromCronJob(ctx context.Context, cronJob, job string, timeout time.Duration) (*jobResult, error) {
	start := time.Now()
	if _, err := k.ns(ctx, "create", "job", job, "--from", "cronjob/"+cronJob); err != nil {
		return nil, fmt.Errorf("create job %s from cronjob/%s: %w", job, cronJob, err)
	}
	return k.waitJob(ctx, job, start, timeout)
}

// waitJob waits until an existing Job completes or fails; start is when it was created. A failed
// Job is returned as an error together with its logs.
func (k *kube) waitJob(ctx context.Context, job string, start time.Time, timeout time.Duration) (*jobResult, error) {
	res := &jobResult{}
	err := poll(ctx, timeout, 2*time.Second, func() (bool, error) {
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
		if err := k.getJSON(ctx, true, &j, "job", job); err != nil {
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
		return res, fmt.Errorf("job %s did not finish in %s: %w\njob logs:\n%s\nevents:\n%s", job, timeout, err, tail(logs, 40), k.events(ctx))
	}
	if !res.Succeeded {
		return res, fmt.Errorf("job %s failed after %s\njob logs:\n%s\nevents:\n%s", job, res.Duration.Round(time.Second), tail(logs, 60), k.events(ctx))
	}
	return res, nil
}

// jobLogs collects the logs of every container (init containers first, in order) of every pod of
// a Job. `kubectl logs job/x --all-containers` gives up at the first container that never started,
// which hides the output of the step that failed.
func (k *kube) jobLogs(ctx context.Context, job string) string {
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
	if err := k.getJSON(ctx, true, &pods, "pods", "-l", "job-name="+job); err != nil {
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
			out, err := k.ns(ctx, "logs", p.Metadata.Name, "-c", c, "--tail", "100")
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

// portForward starts `kubectl port-forward` to a Service on a free local port chosen by kubectl and
// returns 127.0.0.1:<port> and a stop function that kills exactly that process.
func (k *kube) portForward(ctx context.Context, namespace, service, remotePort string) (string, func(), error) {
	return k.portForwardTo(ctx, namespace, "svc/"+service, remotePort)
}

// portForwardTo is portForward to any target kubectl accepts (svc/NAME, pod/NAME, deploy/NAME).
func (k *kube) portForwardTo(ctx context.Context, namespace, target, remotePort string) (string, func(), error) {
	cmd := exec.Command("kubectl", "--context", k.context, "-n", namespace, "port-forward",
		"--address", "127.0.0.1", target, ":"+remotePort)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, fmt.Errorf("port-forward pipe: %w", err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start port-forward: %w", err)
	}
	stop := func() {
		_ = cmd.Process.Kill() // only the process started here; Wait reaps it
		_ = cmd.Wait()
	}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := forwardingRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
		// Keep draining so kubectl never blocks on a full pipe.
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case port := <-found:
		return "127.0.0.1:" + port, stop, nil
	case <-time.After(30 * time.Second):
		stop()
		return "", nil, fmt.Errorf("port-forward to %s/%s:%s did not start in 30s: %s", namespace, target, remotePort, stderr.String())
	case <-ctx.Done():
		stop()
		return "", nil, ctx.Err()
	}
}

// poll calls check every interval until it returns true, an error, or the timeout passes.
func poll(ctx context.Context, timeout, interval time.Duration, check func() (bool, error)) error {
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
