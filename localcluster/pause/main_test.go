package main

import (
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestReapCollectsExitedChildren leaves children unwaited (zombies) and
// checks that one reap() call collects all of them.
func TestReapCollectsExitedChildren(t *testing.T) {
	var pids []int
	for i := 0; i < 3; i++ {
		cmd := exec.Command("/bin/true")
		if err := cmd.Start(); err != nil {
			t.Skipf("cannot start a child: %v", err)
		}
		pids = append(pids, cmd.Process.Pid)
	}
	time.Sleep(200 * time.Millisecond)
	reap()
	for _, pid := range pids {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
			t.Errorf("child %d still exists after reap (zombie)", pid)
		}
		var status syscall.WaitStatus
		if got, _ := syscall.Wait4(pid, &status, syscall.WNOHANG, nil); got > 0 {
			t.Errorf("child %d was left for a later wait", pid)
		}
	}
}
