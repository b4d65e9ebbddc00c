package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/driftwatch/driftwatch/services/telemetry"
)

// newVersionCmd prints what the binary is: the module version, the commit
// it was built from (and whether the tree had changes) and the Go version,
// as `driftwatch --version` does.
func newVersionCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print driftwatch's version, the commit it was built from and the Go version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			b := telemetry.ReadBuild()
			if output == outJSON {
				return printJSON(b)
			}
			printf(os.Stdout, "driftwatch %s\n", b)
			return nil
		},
	}
	outputFlag(cmd.Flags(), &output, outTable, outJSON)
	return cmd
}
