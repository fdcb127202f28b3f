package iso_test

import (
	"bytes"
	"fmt"
	"log"
	"time"

	"github.com/kiln-project/kiln/iso"
)

func ExampleWrite() {
	entries := []iso.Entry{
		{Name: "user-data", Data: []byte("#cloud-config\nhostname: demo\n")},
		{Name: "meta-data", Data: []byte("instance-id: iid-demo\n")},
		{Name: "network-config", Data: []byte("version: 2\nethernets: {}\n")},
	}
	var img bytes.Buffer
	opts := iso.Options{ModTime: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	if err := iso.Write(&img, opts, entries); err != nil {
		log.Fatal(err)
	}

	label, files, err := iso.Read(bytes.NewReader(img.Bytes()), int64(img.Len()))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d-byte image, label %s\n", img.Len(), label)
	for _, f := range files {
		fmt.Printf("%-14s %d bytes\n", f.Name, len(f.Data))
	}
	// Output:
	// 59392-byte image, label cidata
	// meta-data      22 bytes
	// network-config 25 bytes
	// user-data      29 bytes
}
