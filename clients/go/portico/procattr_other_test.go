//go:build !linux

package portico_test

import "os/exec"

// killWithParent has no kernel help outside Linux; TestMain's stop still runs on
// every ordinary exit.
func killWithParent(*exec.Cmd) {}
