
$0193a5c2-7d1e-7000-8000-000000000001task-apitask.completed"1.0*application/protobuf2task-events:Å
$0193a5c2-7d1e-7000-8000-000000000001task.completedÀÝ÷Ë"alice*s
$0193a5c2-7d1e-7000-8000-0000000000aaalicePay rent(:ÀÝ÷ËJ j$0193a5c2-7d1e-7000-8000-0000000000aapx2	completedBpubsubJ/events/taskRJ
H
traceparent9700-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01