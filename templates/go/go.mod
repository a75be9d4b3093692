module kata-go-app

go 1.19
