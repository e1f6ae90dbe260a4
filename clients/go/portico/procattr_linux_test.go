package portico_test

import (
	"os/exec"
	"syscall"
)

// killWithParent has the kernel kill the gateway if the test binary dies without
// stopping it (a panic, a timeout, SIGKILL), so no gateway outlives its test run.
func killWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
