package csvout_test

import (
	"bytes"
	"encoding/csv"
	"reflect"
	"testing"

	"github.com/driftwatch/driftwatch/services/csvout"
)

func TestNeutralise(t *testing.T) {
	cases := []struct{ in, want string }{
		{"=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"},
		{"+1", "'+1"},
		{"-12.50", "'-12.50"},
		{"@SUM(A1:A2)", "'@SUM(A1:A2)"},
		{"\tcmd", "'\tcmd"},
		{"\rcmd", "'\rcmd"},
		{"", ""},
		{"ORD-1001", "ORD-1001"},
		{"a=b", "a=b"},
		{" =x", " =x"},
		{"'=x", "'=x"},
		{"12.50", "12.50"},
		{"\u00e9=x", "\u00e9=x"},
	}
	for _, c := range cases {
		if got := csvout.Neutralise(c.in); got != c.want {
			t.Errorf("Neutralise(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestWriterNeutralisesEveryField(t *testing.T) {
	var buf bytes.Buffer
	w := csvout.NewWriter(&buf)
	rec := []string{"=1+1", "-12.50", "\tx", "\rx", "@SUM(A1)", "+1", "ok", "", "a,b"}
	orig := append([]string(nil), rec...)
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteAll([][]string{{"=cmd|' /C calc'!A0", "fine"}}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rec, orig) {
		t.Errorf("Write changed the caller's record: %q", rec)
	}
	want := "'=1+1,'-12.50,'\tx,\"'\rx\",'@SUM(A1),'+1,ok,,\"a,b\"\n'=cmd|' /C calc'!A0,fine\n"
	if buf.String() != want {
		t.Fatalf("written:\n%q\nwant:\n%q", buf.String(), want)
	}
	cr := csv.NewReader(&buf)
	cr.FieldsPerRecord = -1
	got, err := cr.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range got {
		for _, f := range row {
			if f != "" && (f[0] == '=' || f[0] == '+' || f[0] == '-' || f[0] == '@' || f[0] == '\t' || f[0] == '\r') {
				t.Errorf("field %q read back starts a formula", f)
			}
		}
	}
}
