package iqn

import (
	"strings"
	"testing"
)

func TestNormalizeNameAccepts(t *testing.T) {
	for in, want := range map[string]string{
		"iqn.1994-05.com.redhat:client1":                      "iqn.1994-05.com.redhat:client1",
		"iqn.2010-06.com.nutanix:vg-db-0":                     "iqn.2010-06.com.nutanix:vg-db-0",
		"IQN.1991-05.com.Microsoft:WIN-42.corp.example":       "iqn.1991-05.com.microsoft:win-42.corp.example",
		"iqn.2001-04.com.example":                             "iqn.2001-04.com.example",
		"iqn.2024-12.org.example.storage:a:b.c":               "iqn.2024-12.org.example.storage:a:b.c",
		"eui.02004567a425678d":                                "eui.02004567A425678D",
		"EUI.02004567A425678D":                                "eui.02004567A425678D",
		"iqn.1998-01.com.vmware:esx01-4f3c2a1b":               "iqn.1998-01.com.vmware:esx01-4f3c2a1b",
		"iqn.2024-01.com.example:" + strings.Repeat("x", 190): "iqn.2024-01.com.example:" + strings.Repeat("x", 190),
	} {
		got, err := NormalizeName(in)
		if err != nil || got != want {
			t.Errorf("NormalizeName(%q) = %q, %v; want %q", in, got, err, want)
		}
		if ValidateName(in) != nil {
			t.Errorf("ValidateName(%q) failed", in)
		}
	}
}

func TestNormalizeNameRejects(t *testing.T) {
	for in, want := range map[string]string{
		"":                                  "initiator name is empty (expected e.g. iqn.2024-01.com.example:host1)",
		"host1":                             `"host1" is not an iSCSI name: it must start with iqn. or eui. (e.g. iqn.2024-01.com.example:host1)`,
		"iqn:2024-01.com.example:h1":        "did you mean iqn.2024-01.com.example:h1?",
		"2024-01.com.example:h1":            "did you mean iqn.2024-01.com.example:h1?",
		"iqn.2024-13.com.example:h1":        `has date "2024-13" where YYYY-MM is expected`,
		"iqn.24-01.com.example":             `has date "24-01"`,
		"iqn.2024-01":                       "lacks the reversed domain after the date",
		"iqn.2024-01.example:h1":            `has naming authority "example" where a reversed domain is expected (e.g. iqn.2024-01.com.example)`,
		"iqn.2024-01.com..example":          `has domain label ""`,
		"iqn.2024-01.com.-bad":              `has domain label "-bad"`,
		"iqn.2024-01.com.example:":          "ends with ':' and no name after it (e.g. iqn.2024-01.com.example:host1)",
		"iqn.2024-01.com.example:my_host 1": `has character '_', not allowed in iSCSI names (a-z, 0-9, '-', '.', ':'); did you mean iqn.2024-01.com.example:my-host-1?`,
		"eui.0123":                          `needs exactly 16 hexadecimal digits after eui., got "0123"`,
		"eui.02004567A425678G":              "needs exactly 16 hexadecimal digits",
		"iqn.2024-01.com.example:" + strings.Repeat("x", 200): "the limit is 223",
	} {
		_, err := NormalizeName(in)
		if err == nil {
			t.Errorf("NormalizeName(%q) accepted", in)
			continue
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("NormalizeName(%q) = %q; want it to contain %q", in, err, want)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("NormalizeName(%q): error spans lines", in)
		}
	}
}
