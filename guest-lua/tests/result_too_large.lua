--! max-result-bytes: 100
--! error: result-too-large
--! message: larger than the limit of 100 bytes
return string.rep("x", 200)
