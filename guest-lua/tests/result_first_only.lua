--! result: [1,2]
return {1, 2}, "ignored", 3
