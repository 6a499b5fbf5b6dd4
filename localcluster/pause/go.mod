module github.com/geocube-acceptance/localcluster/pause

go 1.22
