module leoflow.dev/bench/webhookfloor

go 1.26.0
