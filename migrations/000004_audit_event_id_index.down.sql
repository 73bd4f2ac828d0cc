-- Back to version 3: the index stays (version 3 of earlier releases built
-- it; reverting version 3 drops it with its column).
SELECT 1;
