// Reads base64 bodies, one per line, and prints what Go's encoding/json Decoder (the one gin and so Ollama use)
// says of each: "error <base64 of its message>", or "ok <offset>" with the offset after the first value.
package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
)

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<26)
	for in.Scan() {
		body, err := base64.StdEncoding.DecodeString(in.Text())
		if err != nil {
			panic(err)
		}
		var value any
		decoder := json.NewDecoder(bytes.NewReader(body))
		if err := decoder.Decode(&value); err != nil {
			fmt.Printf("error %s\n", base64.StdEncoding.EncodeToString([]byte(err.Error())))
		} else {
			fmt.Printf("ok %d\n", decoder.InputOffset())
		}
	}
}
