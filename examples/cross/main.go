// hello prints the platform it was built for and the one it runs on.
package main

import (
	"fmt"
	"runtime"
)

var target = "unknown"

func main() {
	fmt.Printf("hello from %s (running on %s/%s)\n", target, runtime.GOOS, runtime.GOARCH)
}
