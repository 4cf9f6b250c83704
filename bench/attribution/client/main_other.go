//go:build !linux

// Command client is the short-lived process of the attribution benchmark; it
// is built for Linux only.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "client: Linux only")
	os.Exit(2)
}
