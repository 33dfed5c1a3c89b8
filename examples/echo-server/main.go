// Command echo-server is the runnable example of steadfast. It is being
// written; until then it only says so.
package main

import "fmt"

func main() {
	fmt.Println("echo-server: the example is not written yet; see README.md")
}
