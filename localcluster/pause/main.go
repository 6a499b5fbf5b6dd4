// Command pause is the sandbox ("infra") container of the embedded cluster's
// pods: it holds the pod's namespaces open by doing nothing, forever.
//
// It is our own build of what registry.k8s.io/pause does, because the cluster
// cannot pull images: it sleeps until SIGINT or SIGTERM (then exits 0), and as
// PID 1 of a pod that shares its PID namespace it reaps orphaned children on
// SIGCHLD so they never pile up as zombies.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// version is printed by -v; the image tag tracks the upstream pause release
// whose behaviour this mirrors.
const version = "3.10-1"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-v" {
		fmt.Printf("pause.go version: %s\n", version)
		return
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "Warning: pause should be the first process")
	}

	signals := make(chan os.Signal, 16)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		switch sig {
		case syscall.SIGCHLD:
			reap()
		default:
			fmt.Fprintf(os.Stderr, "Shutting down, got signal: %v\n", sig)
			os.Exit(0)
		}
	}
}

// reap collects every exited child without blocking. SIGCHLD signals coalesce,
// so one delivery may stand for several exits: loop until none is left.
func reap() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
	}
}
