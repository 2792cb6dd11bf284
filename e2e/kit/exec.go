//go:build e2e

package kit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// cmdError carries what a failed command printed, so test failures show the cause.
type cmdError struct {
	Cmd      string
	ExitCode int
	Stderr   string
	Err      error
}

func (e *cmdError) Error() string {
	msg := fmt.Sprintf("%s: %v", e.Cmd, e.Err)
	if s := strings.TrimSpace(e.Stderr); s != "" {
		msg += "\n" + Tail(s, 40)
	}
	return msg
}

func (e *cmdError) Unwrap() error { return e.Err }

// RunCmd runs a short command and returns its stdout. extraEnv is appended to the environment of
// the test process (later entries win).
func RunCmd(ctx context.Context, dir string, extraEnv []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), extraEnv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		code, err := failure(ctx, err)
		return stdout.String(), &cmdError{Cmd: describeCmd(name, args), ExitCode: code, Stderr: stderr.String() + stdout.String(), Err: err}
	}
	return stdout.String(), nil
}

// runLogged runs a long command (pulumi up, ...) with stdout and stderr going to logPath as well as
// being returned; stdout is returned separately because some commands print JSON there.
func runLogged(ctx context.Context, dir string, extraEnv []string, logPath string, name string, args ...string) (stdout string, err error) {
	f, err := os.Create(logPath)
	if err != nil {
		return "", fmt.Errorf("create log %s: %w", logPath, err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close log %s: %w", logPath, cerr)
		}
	}()
	if _, err := fmt.Fprintf(f, "$ %s\n", describeCmd(name, args)); err != nil {
		return "", fmt.Errorf("write log %s: %w", logPath, err)
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), extraEnv...)
	var out, errOut bytes.Buffer
	cmd.Stdout = &teeWriter{buf: &out, file: f}
	cmd.Stderr = &teeWriter{buf: &errOut, file: f}
	if runErr := cmd.Run(); runErr != nil {
		code, runErr := failure(ctx, runErr)
		return out.String(), &cmdError{
			Cmd: describeCmd(name, args) + " (full log: " + logPath + ")", ExitCode: code,
			Stderr: out.String() + "\n" + errOut.String(), Err: runErr,
		}
	}
	return out.String(), nil
}

// failure is the exit code of a command that failed with err (-1 when it did not exit by itself)
// and err, which also names the context's error when the timeout or a cancel ended the command.
func failure(ctx context.Context, err error) (int, error) {
	code := -1
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	}
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (%w)", err, ctx.Err())
	}
	return code, err
}

// teeWriter keeps the output in memory and in the log file; a failing log write must not kill the
// command, so its error is ignored there (the in-memory copy is what the test uses).
type teeWriter struct {
	buf  *bytes.Buffer
	file *os.File
}

func (w *teeWriter) Write(p []byte) (int, error) {
	_, _ = w.file.Write(p)
	return w.buf.Write(p)
}

func describeCmd(name string, args []string) string {
	return strings.TrimSpace(name + " " + strings.Join(args, " "))
}

// Tail returns the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d lines before)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
