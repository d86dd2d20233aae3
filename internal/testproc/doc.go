// Package testproc starts and kills the child processes of crash and
// fault tests, the one way every package's tests do it.
//
// A crash test kills a real process (SIGKILL: no deferred call, no flush,
// no Close) and then checks what the files promise. The child is usually
// the test binary itself, re-executed in a named role: the test package
// registers its roles in TestMain with Main, and Start with Options.Role
// runs the binary with -test.run=^$ and the role's name in the
// environment, so Main runs the role instead of the tests and exits with
// its status. A child can also be another binary (Options.Path), such as
// a freshly built journalctl.
//
// The child's standard output is read line by line as it comes: Next and
// WaitFor read it in order (a readiness line, a request's answer),
// Options.OnLine sees every line as it arrives (acknowledgements a test
// must know about before it kills), and Lines returns all of them once the
// child is gone. Kill sends SIGKILL and waits; KillAfter does so after a
// delay the caller chose (Between picks a random one), and Killed tells
// whether the child died of that SIGKILL rather than on its own. Every
// child is killed and reaped when its test ends.
//
// Nothing here imports the journal: the package sits in internal/ beside
// the other leaves and only test binaries import it.
package testproc
