module github.com/driftwatch/driftwatch/schemas

go 1.26.0
