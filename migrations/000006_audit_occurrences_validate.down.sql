-- Back to version 5: nothing to undo (the constraints stay, validated).
SELECT 1;
