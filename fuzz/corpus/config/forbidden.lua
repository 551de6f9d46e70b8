os.execute("id")
