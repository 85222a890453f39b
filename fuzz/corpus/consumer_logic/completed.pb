
$0193a5c2-7d1e-7000-8000-000000000001task.completedÀÝ÷Ë"alice*s
$0193a5c2-7d1e-7000-8000-0000000000aaalicePay rent(:ÀÝ÷ËJ j$0193a5c2-7d1e-7000-8000-0000000000aapx2	completed